"""The identity of a run: what was evaluated, on what data, under which protocol, by which code.

Defined once here and read by the store (its run columns), compare/gate loading (``RunData.info``) and the
leaderboard, so the fields that tell two runs apart are spelt out in one place.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from harness.results.schema import RunResult


class RunIdentity(BaseModel):
    run_id: str
    command: str
    model: str = ""
    model_spec: str = ""
    model_fingerprint: str = ""  # checkpoint content hash + adapter settings
    is_demo_model: bool = False
    is_demo_data: bool = False
    protocol: str = ""
    protocol_version: str = ""
    protocol_hash: str = ""  # content hash of the resolved protocol settings ("" for imported runs)
    limit: int | None = None
    data_fingerprints: dict[str, str] = Field(default_factory=dict)  # task -> digest of its annotation files
    task_versions: dict[str, str] = Field(default_factory=dict)
    git_commit: str | None = None
    git_dirty: bool | None = None

    @classmethod
    def of(cls, result: RunResult) -> RunIdentity:
        model, protocol = result.model, result.protocol
        return cls(
            run_id=result.run_id,
            command=result.spec.command,
            model=model.name if model else "",
            model_spec=model.spec if model else "",
            model_fingerprint=model.fingerprint if model else "",
            is_demo_model=bool(model and model.is_demo),
            is_demo_data=result.data.is_demo,
            protocol=protocol.name if protocol else "",
            protocol_version=protocol.version if protocol else "",
            protocol_hash=protocol.content_hash if protocol else "",
            limit=result.spec.limit,
            data_fingerprints=dict(result.data.fingerprints),
            task_versions={name: record.version for name, record in result.tasks.items()},
            git_commit=result.git.commit,
            git_dirty=result.git.dirty,
        )

    @property
    def is_demo(self) -> bool:
        return self.is_demo_data or self.is_demo_model
