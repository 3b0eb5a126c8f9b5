"""The pydantic base shared by every model of the package."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import InvalidProgress

__all__ = ["FrozenModel"]

_object_setattr = object.__setattr__
#: One shared set per distinct combination of explicitly set fields: an
#: instance's own set costs 200-700 bytes, and sessions are held by the
#: thousand. Pydantic copies the set before changing it, so sharing is safe.
_FIELDS_SETS: dict[frozenset[str], set[str]] = {}


_ALL_FIELDS: dict[type[BaseModel], set[str]] = {}


def _shared_fields_set(fields: set[str]) -> set[str]:
    key = frozenset(fields)
    shared = _FIELDS_SETS.get(key)
    if shared is None:
        shared = _FIELDS_SETS.setdefault(key, set(key))
    return shared


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
        _object_setattr(
            self, "__pydantic_fields_set__", _shared_fields_set(self.__pydantic_fields_set__)
        )

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied, without validation.

        For the engine's own use on values that are already valid: about ten
        times cheaper than ``model_copy(update=...)``.
        """
        new = self.__class__.__new__(self.__class__)
        values = self.__dict__.copy()
        values.update(changes)
        _object_setattr(new, "__dict__", values)
        _object_setattr(new, "__pydantic_fields_set__", self.__pydantic_fields_set__)
        _object_setattr(new, "__pydantic_extra__", None)
        _object_setattr(new, "__pydantic_private__", None)
        return new

    @classmethod
    def trusted(cls, **values: Any) -> Self:
        """Build from values known valid, given for every field, without validation."""
        new = cls.__new__(cls)
        _object_setattr(new, "__dict__", values)
        fields_set = _ALL_FIELDS.get(cls)
        if fields_set is None:
            fields_set = _ALL_FIELDS[cls] = _shared_fields_set(set(cls.model_fields))
        _object_setattr(new, "__pydantic_fields_set__", fields_set)
        _object_setattr(new, "__pydantic_extra__", None)
        _object_setattr(new, "__pydantic_private__", None)
        return new


def _describe(exc: ValidationError, model: str) -> str:
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '<model>'}: {error['msg']}"
        for error in exc.errors(include_url=False)
    )
    return f"invalid {model}: {problems}"
