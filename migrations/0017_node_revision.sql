-- A token that changes with every write of a node (a random number, so that a restored
-- backup cannot bring back one a process has seen). Each process keeps the nodes it has
-- read and reads one again only when the token beside a stock position differs: a
-- decision on a network of a thousand stores reads hundreds of nodes.
ALTER TABLE nodes ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
