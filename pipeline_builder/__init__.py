"""Hydra-agnostic: trial specs -> KFP pipeline -> pipeline.yaml, run locally or on Vertex AI.

Subpackages by job: `spec` (what a sweep is), `wheels` (code shipped as wheels), `cloud`
(Vertex AI and Cloud Storage), `local` (a compiled pipeline run on this machine),
`emulator` (Vertex's services, offline), `recovery` (failed trials run again as new
PipelineJobs of the sweep); `pipeline` compiles, `cli` is the command line.
Importing this package is cheap: nothing is imported until a subpackage is.
"""
