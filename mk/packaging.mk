# The Debian package (not in CI as a target; its test builds it):
#   make deb                     dist/warren_VERSION_ARCH.deb
.PHONY: deb
deb:
	./scripts/deb.sh
