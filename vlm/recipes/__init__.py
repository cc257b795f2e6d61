"""Recipes: one module per recipe (its embedded default and its presets, as data), registered in
`vlm.recipes.base.RECIPES`; `run` resolves and runs them (every stage in order, then the evaluation)."""
