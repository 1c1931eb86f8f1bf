"""The central view of the network: nodes, SKUs, stock, in-transit supply, reservations, ATP."""
