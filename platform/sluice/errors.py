"""Sluice's exceptions, one tree, each knowing its HTTP status.

::

    SluiceError                      500  base class; ``to_dict()`` renders JSON detail
    ├── ConfigError                  422  a settings file, spec or option is invalid
    ├── InputError                   422  caller input failed validation (names the field)
    ├── NotFoundError                404  a named thing does not exist
    │   ├── ModelNotFoundError       404  no such registered model, version or alias
    │   └── CustomerNotFoundError    404  the online store has no features for a customer
    ├── ConflictError                409  the request contradicts current state
    │   ├── PromotionRefusedError    409  a model version misses its promotion floors
    │   ├── ModelUnavailableError    409  a served alias has no loadable version yet
    │   ├── StaleFeaturesError       409  online features older than the contract allows
    │   └── FutureFeaturesError      409  online features dated after the request's time
    ├── AuthError                    401  missing or unknown credentials
    │   └── ForbiddenError           403  known credentials without the needed scope
    └── UnavailableError             503  a dependency (Ray, a model, a channel) is not ready

Raise the most specific class; ``retryable`` says whether trying again can help
(a dependency that is not ready yet) or cannot (bad input, refused promotion).
"""

from __future__ import annotations

from typing import Any, ClassVar


class SluiceError(Exception):
    """Base of every error Sluice raises on purpose."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, field: str | None = None, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.detail = detail

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready detail: code, message, the field at fault and any extra context."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        if self.detail:
            out["detail"] = self.detail
        return out


class ConfigError(SluiceError):
    status_code = 422
    code = "invalid_config"

    @classmethod
    def invalid(cls, origin: str, exc: Any, whole: str = "spec") -> ConfigError:
        """A pydantic ``ValidationError`` of the file ``origin`` as one error naming the
        file and the first field at fault (``whole`` when the fault is the document)."""
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or whole
        return cls(f"{origin}: {where}: {first['msg']}", field=where, errors=len(exc.errors()))


class InputError(SluiceError):
    status_code = 422
    code = "invalid_input"


class NotFoundError(SluiceError):
    status_code = 404
    code = "not_found"


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class CustomerNotFoundError(NotFoundError):
    code = "customer_not_found"


class ConflictError(SluiceError):
    status_code = 409
    code = "conflict"


class StaleFeaturesError(ConflictError):
    code = "stale_features"


class FutureFeaturesError(ConflictError):
    code = "features_after_request"


class PromotionRefusedError(ConflictError):
    code = "promotion_refused"


class ModelUnavailableError(ConflictError):
    code = "model_unavailable"


class AuthError(SluiceError):
    status_code = 401
    code = "unauthorized"


class ForbiddenError(AuthError):
    status_code = 403
    code = "forbidden"


class UnavailableError(SluiceError):
    status_code = 503
    code = "unavailable"
    retryable = True
