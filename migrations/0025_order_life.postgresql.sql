ALTER TABLE transfers DROP CONSTRAINT transfers_status_check;
ALTER TABLE transfers ADD CONSTRAINT transfers_status_check CHECK (status IN ('in_transit',
    'received', 'cancelled'));
CREATE INDEX transfers_leg ON transfers (shipment_id);
