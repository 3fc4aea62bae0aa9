"""What the user does with groups: keep/delete decisions and the keep rules
they apply (decisions), moving files to the trash with a journal and undo
(trashing, over the backends in trash_backends), ignore marks
(ignore_marks). Nothing is ever deleted outright.
"""
