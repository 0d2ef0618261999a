"""The data layer: one LightningDataModule per dataset layout (`msd`, `brats`, `totalseg`) on a shared
`base` that composes the parts (`facts`, `pipelines`, `caching`, `store`/`patches`, `check_once`/`checks`,
`split`, `loaders`/`sampling`, `inference`, `geometry`), with the torch-free layout facts in `layouts/` and the
synthetic writers in `synthetic/`.

Nothing is imported here, so `seg synth` loads no torch: configs name the modules in full
(`segmentation.data.msd.MSDDataModule`).
"""
