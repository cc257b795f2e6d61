"""The parts catalogue: what the code makes of every encoder x projector x high-res combination (`matrix`),
and the README tables rendered from it and from the registries (`table`)."""
