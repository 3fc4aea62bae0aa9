"""The SQLite cache database beside the library: opening and migrations
(db), the queries (store), one scan per database (dblock). All SQL is in
db and store. cachefile writes the other caches (the pair cache, the scan
memo: numpy files) atomically.
"""
