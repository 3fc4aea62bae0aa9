"""The SQLite cache beside the library: opening and migrations (db), the
queries (store), one scan per database (dblock), atomic cache files
(cachefile). The only SQL is here.
"""
