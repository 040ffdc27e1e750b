"""mtr.models: every architecture is one frame, `frame.MultiTaskModel` (features -> shared part -> towers).

`shared_bottom`, `mmoe`, `ple` and `single_task` each define their shared part and the class that configs
name (e.g. `mtr.models.mmoe.MMoE`); `layers` holds the building blocks.
"""
