"""The pydantic base shared by every model of the package."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import InvalidProgress

__all__ = ["FrozenModel"]


class FrozenModel(BaseModel):
    """An immutable model whose constructor raises :class:`InvalidProgress`.

    ``InvalidProgress`` is both a ``ProgressError`` and a ``ValueError``, and
    its message keeps pydantic's, which names the offending field. Parsing
    foreign data with ``model_validate``/``model_validate_json`` still raises
    pydantic's ``ValidationError`` (also a ``ValueError``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, /, **data: Any) -> None:
        # Calls the validator directly (as BaseModel.__init__ does) to keep
        # construction cheap: states are built on every progress update.
        try:
            self.__pydantic_validator__.validate_python(data, self_instance=self)
        except ValidationError as exc:
            raise InvalidProgress(_describe(exc, type(self).__name__)) from exc


def _describe(exc: ValidationError, model: str) -> str:
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '<model>'}: {error['msg']}"
        for error in exc.errors(include_url=False)
    )
    return f"invalid {model}: {problems}"
