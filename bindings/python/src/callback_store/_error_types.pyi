# Static types of the generated error classes, for mypy/pyright: the
# generated module builds them at run time in a way type checkers cannot
# follow (a class redefined with nested subclasses). Never imported at run
# time; callback_store/__init__.py imports the real classes.

class CallbackStoreError(Exception):
    """An error of the callback store; each code is a nested subclass."""

    code: str
    reason: str
    @property
    def message(self) -> str: ...

    class Unauthorized(CallbackStoreError):
        def __init__(self, code: str, reason: str) -> None: ...

    class NotFound(CallbackStoreError):
        def __init__(self, code: str, reason: str) -> None: ...

    class InvalidTransition(CallbackStoreError):
        def __init__(self, code: str, reason: str) -> None: ...

    class Conflict(CallbackStoreError):
        def __init__(self, code: str, reason: str) -> None: ...

    class ValidationError(CallbackStoreError):
        def __init__(self, code: str, reason: str) -> None: ...

    class StorageError(CallbackStoreError):
        busy: bool
        def __init__(self, code: str, reason: str, busy: bool) -> None: ...

    class SchemaError(CallbackStoreError):
        def __init__(self, code: str, reason: str) -> None: ...

class DispatchError(Exception):
    """Raised by a Dispatcher's place_call: the callback fails with `reason`."""

    reason: str
    @property
    def message(self) -> str: ...

    class Failed(DispatchError):
        def __init__(self, reason: str) -> None: ...

class ObserverError(Exception):
    """Raised by a ChangeObserver's methods: the watch stops."""

    reason: str
    @property
    def message(self) -> str: ...

    class Stop(ObserverError):
        def __init__(self, reason: str) -> None: ...
