"""One module per API document the gateway serves; all translate to ``schemas.messages``."""
