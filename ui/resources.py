"""What every session shares: the configuration and one Assistant (models, store, embedded Weaviate).

Only these go into Streamlit's resource cache. Nothing derived from an upload (image, note, question, answer)
is ever cached here, kept in a module global or written to a file: it lives in the session's own
``st.session_state`` and goes with the session.
"""

from __future__ import annotations

import dataclasses
import logging

import streamlit as st

from medrag.assistant import Assistant
from medrag.config import Config, ConfigError, UIConfig, load_config
from medrag.store.errors import StoreError
from ui.markdown import escape

log = logging.getLogger("medrag.ui")

_SETUP_HINT = "Run `make setup` (or `medrag doctor` to see what is missing), then reload this page."


class Unavailable(RuntimeError):
    """The app cannot serve: the message says what is missing and how to fix it."""


def config() -> Config:
    try:
        return load_config()
    except ConfigError as error:
        raise Unavailable(f"The configuration cannot be read: {error}") from None


@st.cache_resource(show_spinner="Starting the knowledge base and loading the models…")
def _assistant(settings: Config) -> Assistant:
    opened = Assistant.local(settings) if not settings.weaviate.url else Assistant.connect(
        settings.weaviate.url, settings.weaviate.api_key, tenant=settings.weaviate.tenant, config=settings)
    opened.store.ensure_schema()  # a new server has no collections yet: counting and ingesting need them
    return opened


def assistant() -> Assistant:
    """The shared Assistant, or ``Unavailable`` with the cause and the fix (never a stack trace on the page)."""
    settings = config()
    try:
        return _assistant(dataclasses.replace(settings, ui=UIConfig()))  # app settings never restart the models
    except StoreError as error:
        raise Unavailable(f"The knowledge base (Weaviate) is not available: {error}") from None
    except (FileNotFoundError, OSError) as error:
        raise Unavailable(f"A model or data file is missing: {error}. {_SETUP_HINT}") from None
    except ValueError as error:
        raise Unavailable(f"A model or setting could not be loaded: {error}. {_SETUP_HINT}") from None


def require_assistant() -> Assistant:
    """The Assistant, or an error box and the end of this page's run."""
    try:
        return assistant()
    except Unavailable as error:
        log.warning("app unavailable: %s", type(error).__name__)
        st.error(escape(str(error)))
        st.stop()
