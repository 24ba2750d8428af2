# Browser for tests/test_browser.py: Debian's chromium (and a CJK font for the seed's Chinese
# headings, so screenshots show no empty boxes), used by playwright through
# executable_path=/usr/bin/chromium. Never `playwright install` (no browser downloads).
CHROMIUM ?= /usr/bin/chromium

.PHONY: browser-deps
browser-deps:
	@if [ -x "$(CHROMIUM)" ] && fc-list :lang=zh 2>/dev/null | grep -q .; then \
	  echo "browser-deps: $(CHROMIUM) and a CJK font present"; \
	else \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; \
	  elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; \
	  else echo "browser-deps: not root and no sudo; install Debian's chromium package" >&2; exit 1; fi; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-noto-cjk; \
	fi
