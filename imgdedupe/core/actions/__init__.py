"""What the user does with groups: keep/delete decisions (decisions), moving
files to the trash and undo (trashing, trash), ignore marks (ignore_marks).
Nothing is ever deleted outright.
"""
