"""An event log from an imaginary foreign messaging platform, for end-to-end tests that must not lean on mtr.sim."""
