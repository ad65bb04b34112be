"""The project's own errors. Each one means "the input or the configuration is wrong", never "the code is
broken": `stage.py` and the CLI catch `CommentclfError` and print one line instead of a traceback."""


class CommentclfError(Exception):
    """Base of every error a user can fix (params, data, model assets, parity bounds)."""


class ParamsError(CommentclfError, ValueError):
    """params.yaml (or a profile) is missing, not YAML, or does not match the schema."""


class DataError(CommentclfError, ValueError):
    """An input file breaks the data contract; the message says which file, column and row."""


class AssetError(CommentclfError, RuntimeError):
    """A model asset cannot be found or built."""


class LLMError(CommentclfError, RuntimeError):
    """The LLM stage cannot run as configured."""


class ParityError(CommentclfError, RuntimeError):
    """An exported model disagrees with the torch student more than the bounds allow."""


class VocabError(CommentclfError, RuntimeError):
    """A trimmed tokenizer would not reproduce the full one on the corpus it was built from."""


class EngineError(CommentclfError, RuntimeError):
    """A processing engine is missing or failed (e.g. Ray without the `ray` extra)."""


class ServerError(CommentclfError, RuntimeError):
    """An LLM server (label.server) cannot be used: unreachable, the wrong model, a refused key, too many failures."""
