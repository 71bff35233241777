"""Member operations in the core: identify, balance, check-in, redeem, offer and receipt
claims, answered from the local store for any channel (kiosks today, POS next).

`model` is what a channel hands in and gets back (pure values, importable by a sans-io
protocol), `stored` keeps each answer for retries, `service` runs the operations. Nothing
is re-exported here, so importing the model does not import the ledger and the store.
"""
