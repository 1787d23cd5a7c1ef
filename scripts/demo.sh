#!/usr/bin/env bash
# Set everything up, fill demo/inbox with a few sample documents, and run the daemon on it
# with the local engines. Sidecars appear in demo/outbox. Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python scripts/make_demo_inbox.py demo/inbox
mkdir -p demo/outbox   # the daemon refuses to start without its outbox (a typo guard)
echo
echo "demo: watching demo/inbox; sidecars go to demo/outbox (Ctrl-C to stop)."
echo "demo: drop more images or PDFs into demo/inbox while it runs."
exec .venv/bin/ocrwatch run --inbox demo/inbox --outbox demo/outbox \
  --archive demo/archive --quarantine demo/quarantine --state-dir demo/state \
  --lang eng+spa
