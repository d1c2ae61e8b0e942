"""How a run is shown: rich progress on a terminal, plain lines otherwise, JSON on request."""
