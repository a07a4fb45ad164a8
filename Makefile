# Everyday targets. Each part of warren adds its own in mk/<part>.mk.
.PHONY: build test
build:
	go build -o bin/ ./cmd/...

test:
	./scripts/test.sh

include $(wildcard mk/*.mk)
