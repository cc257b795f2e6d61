"""Studies: controlled comparisons as data (arms = recipe runs that differ in one factor), one module per
study, registered in `vlm.studies.base.STUDIES`; `vlm study NAME` runs one and writes its report."""
