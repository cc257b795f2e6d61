"""Evaluation: ``generate.py`` is the batched generation core, ``task.py`` the benchmark seam with one
module per benchmark in ``tasks/``, ``runner.py`` the ``vlm eval`` runner. Nothing heavy is imported
here, so ``vlm --help`` stays fast."""
