"""The shapes world: the embedded default's procedurally generated data (a plugin).

`world` (scenes, rendering), `tasks/` (what is asked about a scene, one emitter per module), `dataset`
(the ``synthetic`` data and preference sources), `benchmarks` (the held-out synthetic eval suite),
`povid` (hallucination injection from ground truth), `cells` (per-cell targets) and the probes
(`hallucination`, `token_probe`, `patch_probe`). The rest of vlm reaches it only through the registries
that `plugin` fills.
"""
