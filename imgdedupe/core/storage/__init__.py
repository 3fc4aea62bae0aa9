"""The SQLite cache database beside the library: opening and migrations
(db), whether a file is ours at all before anything is written (ownership),
moving a damaged database aside and carrying the user's decisions over
(salvage), the queries (store, with the verification stage's rows in
verification_rows), one scan and one writer of moves per database (dblock).
All SQL is in these modules. cachefile writes the other caches (the pair
cache, the scan memo: numpy files) atomically.
"""
