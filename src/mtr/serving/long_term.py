"""A long-term policy as a serving artifact: the fitted Q-network and its choice in one exported program.

The folder holds `program.pt2` (`torch.export`, no pickles) and `manifest.json`: the state and candidate feature
names in input order (`mtr.rl.features`), the horizon, the reward the policy was learned for, what it was learned
from and its off-policy value, and the SHA-256 of the program. The program takes

    state [B, S] float32, to_go [B] float32 (steps left including this one, 1 .. horizon),
    candidates [C, F] float32 (row 0 "send nothing"; C >= 3, pad with disallowed rows), allowed [B, C] bool,
    logging [B, C] float32

and returns q [B, C] and probabilities [B, C]: send nothing where its Q beats the logging policy's average allowed
send, else the logging policy's send probabilities (`mtr.models.candidate_q.send_gate`); the caller draws the
choice. Loading checks the files as the scoring artifact does
(`mtr.serving.artifact.check_listed_files`) before anything is read.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mtr.errors import InputError
from mtr.io import atomic_output_dir, sha256_file, write_json
from mtr.models.candidate_q import CandidateQNetwork, send_gate
from mtr.serving.artifact import MANIFEST_FILE, PROGRAM_FILE, check_listed_files, read_manifest_json
from mtr.serving.program import save_program

KIND = "long_term_policy"
INPUTS = ("state", "to_go", "candidates", "allowed", "logging")


class GatedQProgram(nn.Module):
    """The network's values and the learned policy's probabilities, as one program."""

    def __init__(self, network: CandidateQNetwork) -> None:
        super().__init__()
        self.network = network

    def forward(
        self,
        state: torch.Tensor,
        to_go: torch.Tensor,
        candidates: torch.Tensor,
        allowed: torch.Tensor,
        logging: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.network(state, to_go, candidates)
        return q, send_gate(q, allowed, logging)


def export_long_term_policy(
    network: CandidateQNetwork,
    described: dict[str, Any],
    out: Path | str,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Export the learned policy of `network` to the folder `out`; `described` (feature names, reward, provenance,
    estimates) goes into the manifest. Returns the manifest."""
    missing = [name for name in ("state_features", "candidate_features") if name not in described]
    if missing:
        raise InputError(f"long-term policy export: the description lacks {missing}")
    program = GatedQProgram(network.eval())
    examples = _example_inputs(len(described["state_features"]), len(described["candidate_features"]), network)
    batch, width = torch.export.Dim("batch", min=1, max=1 << 20), torch.export.Dim("candidates", min=3, max=4096)
    dynamic = ({0: batch}, {0: batch}, {0: width}, {0: batch, 1: width}, {0: batch, 1: width})
    with torch.no_grad():
        exported = torch.export.export(program, examples, dynamic_shapes=dynamic, strict=False)
        expected, exported_out = program(*examples), exported.module()(*examples)
    if not all(torch.allclose(a, b) for a, b in zip(expected, exported_out, strict=True)):
        raise RuntimeError("long-term policy export: the exported program disagrees with the network")
    with atomic_output_dir(out, "export-long-term", overwrite) as folder:
        save_program(exported, folder / PROGRAM_FILE)
        manifest = {
            "version": 1,
            "kind": KIND,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "program": {"inputs": list(INPUTS), "outputs": ["q", "probabilities"]},
            "horizon": network.horizon,
            **described,
            "files": {PROGRAM_FILE: sha256_file(folder / PROGRAM_FILE)},
        }
        write_json(folder / MANIFEST_FILE, manifest)
    return manifest


@dataclass(frozen=True)
class LongTermPolicy:
    """A loaded long-term policy artifact: its manifest and program."""

    manifest: dict[str, Any]
    program: Any

    @classmethod
    def load(cls, folder: Path | str) -> LongTermPolicy:
        folder = Path(folder)
        path = folder / MANIFEST_FILE
        manifest = read_manifest_json(folder)
        if manifest.get("kind") != KIND:
            raise InputError(f"{path}: field 'kind' must be {KIND!r}, got {manifest.get('kind')!r}")
        files = manifest.get("files")
        if not isinstance(files, dict) or PROGRAM_FILE not in files:
            raise InputError(f"{path}: field 'files' must list {PROGRAM_FILE} with its checksum")
        horizon = manifest.get("horizon")
        if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
            raise InputError(f"{path}: field 'horizon' must be an integer >= 1, got {horizon!r}")
        check_listed_files(folder, files)
        return cls(manifest, torch.export.load(folder / PROGRAM_FILE).module())

    def probabilities(self, observation: dict[str, np.ndarray], info: dict[str, np.ndarray], to_go: int) -> np.ndarray:
        """[U, C] the policy's probabilities over an environment observation's candidates (`mtr.rl.env`), with
        `to_go` steps left: a `mtr.rl.policies.PolicyRule`."""
        state = torch.as_tensor(observation["state"], dtype=torch.float32)
        steps = torch.full((len(state),), float(min(to_go, self.manifest["horizon"])))
        with torch.no_grad():
            _, probabilities = self.program(
                state,
                steps,
                torch.as_tensor(observation["candidates"][0], dtype=torch.float32),
                torch.as_tensor(observation["mask"].astype(bool)),
                torch.as_tensor(info["logging_probabilities"], dtype=torch.float32),
            )
        return probabilities.double().numpy()


def _example_inputs(n_state: int, n_candidate: int, network: CandidateQNetwork) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    batch, width = 5, 7
    logging = torch.rand(batch, width, generator=generator)
    return (
        torch.rand(batch, n_state, generator=generator),
        torch.randint(1, network.horizon + 1, (batch,), generator=generator).float(),
        torch.rand(width, n_candidate, generator=generator),
        torch.rand(batch, width, generator=generator) > 0.3,
        logging / logging.sum(1, keepdim=True),
    )
