"""mtr.models: every architecture is one frame, `frame.MultiTaskModel` (features -> shared part -> towers).

`shared_bottom`, `mmoe`, `ple` and `single_task` each define only their shared part, which configs name
as the frame's nested `shared` class (e.g. `mtr.models.mmoe.GatedExperts`); `layers` holds the building
blocks and `checkpoint` rebuilds a trained frame from a run folder.
"""
