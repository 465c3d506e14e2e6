"""Recipe kinds: how a kind turns one source question into SFT targets (or new questions) with a teacher.

One module per kind in this folder, each defining `KIND = RecipeKind(...)` (its templates and placeholders,
required templates, whether it is unlabeled, its run function); `registry.py` finds them by scanning the folder
and resolves `kind:` references (a built-in name, `path/to/file.py:NAME`, `package.module:NAME`), and validates
a recipe against its kind. `runner.py` holds what a run function works with (teacher requests, templates, the
verified final check); `questions.py` the helpers of the question-writing kinds.
"""
