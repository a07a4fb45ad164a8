# A queue longer than memory: 20 GiB queued under a 200 MiB watermark,
# SIGKILL, restart, everything consumed in order; peak RSS and rates are
# logged. Needs about 25 GB free on the temporary directory's disk.
#   make bench-paging PAGING_BYTES=5368709120   (5 GiB)
PAGING_BYTES ?= 21474836480
.PHONY: bench-paging
bench-paging:
	WARREN_PAGING_BYTES=$(PAGING_BYTES) go test -count=1 -timeout 3h -run 'TestQueueLongerThanMemory$$' -v ./cmd/warren/ | grep -v '^=== RUN'
