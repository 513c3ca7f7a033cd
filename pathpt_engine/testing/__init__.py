"""Test helpers shipped with the engine (ours, the benchmarks' and other modules' tests).

`backbones`: tiny random-init KEEP and CLIP folders; `conch`, `musk`, `quiltnet`: the same in those formats;
`cohorts`: fake feature cohorts and a tiny backbone. Nothing in the engine imports this package.
"""
