"""Delivery promises: when nodes and carriers work, the dates that follow, the carrier
that takes a parcel, and the held promises' records. It serves the other kinds (sourcing
dates its shipments with it) and imports none of them."""
