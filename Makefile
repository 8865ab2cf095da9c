# finevl: `make demo` and `make test` work on a fresh clone (they create .venv first).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := runs/demo

.PHONY: install demo test bench lint clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# The torch pair on this machine's disk goes in first, exactly, so nothing else is downloaded.
	$(BIN)/pip install --quiet -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	mkdir -p $(DEMO)
	$(BIN)/finevl world generate --out $(DEMO)/world --n 2000 --size 96 --seed 0 --shards 4 --overwrite > $(DEMO)/world.json
	$(BIN)/finevl data tokenizer $(DEMO)/world --out $(DEMO)/tokenizer > $(DEMO)/tokenizer.json
	$(BIN)/finevl world show $(DEMO)/world --out $(DEMO)/gallery.html > $(DEMO)/gallery.json
	@echo "FineShapes world: $(DEMO)/world   gallery: open $(DEMO)/gallery.html"

# pytest exits 5 when it collects no test: that is a failure here, said plainly.
test: install
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected"; exit 1; fi; exit $$rc

bench: install
	$(BIN)/python benchmarks/world_gen.py --out benchmarks/results/world_gen.json

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
