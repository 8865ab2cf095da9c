# finevl: `make demo` and `make test` work on a fresh clone (they create .venv first).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := runs/demo
SCST_LR := 1e-5
TOWER_STEPS := 1400
LIT_STEPS := 250

.PHONY: install demo demo-regions test bench lint clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# The torch pair on this machine's disk goes in first, exactly, so nothing else is downloaded.
	$(BIN)/pip install --quiet -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	mkdir -p $(DEMO)/results
	$(BIN)/finevl world generate --out $(DEMO)/world --n 5000 --size 64 --seed 0 --shards 4 --overwrite > $(DEMO)/world.json
	$(BIN)/finevl world generate --out $(DEMO)/one-object --n 1000 --size 64 --seed 1 --max-objects 1 --overwrite > /dev/null
	$(BIN)/finevl world generate --out $(DEMO)/one-object-train --n 8000 --size 64 --seed 2 --max-objects 1 --overwrite > /dev/null
	$(BIN)/finevl world generate --out $(DEMO)/tower-world --n 12000 --size 64 --seed 4 --overwrite > /dev/null
	$(BIN)/finevl data tokenizer $(DEMO)/world --overwrite --out $(DEMO)/tokenizer > $(DEMO)/tokenizer.json
	$(BIN)/finevl world show $(DEMO)/world --overwrite --out $(DEMO)/gallery.html > $(DEMO)/gallery.json
	# CLIP, locked-image tuning (docs/clip.md): the conv tower with context layers learns the
	# attributes, each cell's object (the world's masks) and the relations between objects on
	# one-object and many-object scenes; then a text tower (and the tower's projection) learn to
	# read it on the world and the one-object scenes together
	rm -rf $(DEMO)/tower $(DEMO)/clip
	$(BIN)/finevl clip tower --data $(DEMO)/one-object-train::$(DEMO)/tower-world --split train --eval-data $(DEMO)/one-object --out $(DEMO)/tower \
	  --model finevl-tiny-conv-ctx --steps $(TOWER_STEPS) --batch-size 64 --warmup-steps 100 --dense-weight 1 --relation-weight 1 --save-every 5000 > $(DEMO)/tower.json
	$(BIN)/finevl clip train --data $(DEMO)/world::$(DEMO)/one-object-train --out $(DEMO)/clip --model $(DEMO)/tower/checkpoint/model --lock-image --unlock-image-head \
	  --steps $(LIT_STEPS) --batch-size 128 --warmup-steps 30 --save-every 100 > $(DEMO)/clip.json
	for label in shape color size pattern; do \
	  $(BIN)/finevl clip zeroshot --model $(DEMO)/clip/checkpoint/model --world $(DEMO)/one-object --label $$label --split all --overwrite --out $(DEMO)/results/zeroshot-$$label.json > /dev/null || exit 1; \
	done
	$(BIN)/finevl clip zeroshot --model $(DEMO)/clip/checkpoint/model --world $(DEMO)/world --label background --overwrite --out $(DEMO)/results/zeroshot-background.json > /dev/null
	$(BIN)/finevl clip retrieval --model $(DEMO)/clip/checkpoint/model --data $(DEMO)/world --split test --examples 4 --overwrite --out $(DEMO)/results/retrieval.json > /dev/null
	$(BIN)/finevl clip compose --model $(DEMO)/clip/checkpoint/model --world $(DEMO)/world --overwrite --out $(DEMO)/results/compose.json > /dev/null
	# captioning (seed 000): MLE on the coarse references, then SCST with CLIP-S + grammar
	rm -rf $(DEMO)/caption-mle $(DEMO)/grammar $(DEMO)/caption-scst $(DEMO)/captions
	$(BIN)/finevl caption train --data $(DEMO)/world --out $(DEMO)/caption-mle --clip $(DEMO)/clip/checkpoint/model --steps 200 --batch-size 32 > /dev/null
	$(BIN)/finevl grammar train --data $(DEMO)/world --out $(DEMO)/grammar --clip $(DEMO)/clip/checkpoint/model --steps 300 > /dev/null
	$(BIN)/finevl caption scst --data $(DEMO)/world --out $(DEMO)/caption-scst --model $(DEMO)/caption-mle/checkpoint/model \
	  --grammar $(DEMO)/grammar/checkpoint/model --grammar-weight 1 --steps 100 --batch-size 16 --lr $(SCST_LR) --warmup-steps 0 --log-every 5 > /dev/null
	for m in mle scst; do \
	  $(BIN)/finevl caption generate --model $(DEMO)/caption-$$m/checkpoint/model --data $(DEMO)/world --split test --limit 300 --overwrite --out $(DEMO)/captions/$$m.json > /dev/null || exit 1; \
	  $(BIN)/finevl finecap eval --pred $(DEMO)/captions/$$m.json --ann $(DEMO)/world --clip $(DEMO)/clip/checkpoint/model --overwrite --out $(DEMO)/results/finecap-$$m.json > /dev/null 2> $(DEMO)/finecap-$$m.log || { cat $(DEMO)/finecap-$$m.log; exit 1; }; \
	done
	# STIC (seed 001): a LLaVA on the demo CLIP's conv tower (its image tokens are the 1/16 map's
	# cells), base -> preferences -> DPO -> DIFT, each evaluated
	rm -rf $(DEMO)/stic
	$(BIN)/finevl stic quickstart --data $(DEMO)/world --clip $(DEMO)/clip/checkpoint/model --out $(DEMO)/stic > $(DEMO)/stic.json
	# editing (seed 002) is too slow for this budget: the report shows the benchmark's table
	# and before/after figures committed in docs/editing/ (a copy of `make bench`'s output)
	$(BIN)/finevl report --overwrite --out $(DEMO)/report.html --run $(DEMO)/clip --world $(DEMO)/world --gallery gallery.html \
	  --caption-run $(DEMO)/caption-mle --caption-run $(DEMO)/caption-scst $(DEMO)/results/*.json $(DEMO)/stic/results/*.json \
	  docs/editing/editing.json > /dev/null
	@echo "report: open $(DEMO)/report.html   (world gallery: $(DEMO)/gallery.html)"

# Osprey-style regions (seed 003), apart from `make demo` (its 15-minute budget is spent):
# a 128 px world, the conv tower (behind a 2x pooling stem, docs/clip.md) trained on its
# attributes and each cell's object at 128 px (the region model reads only the image tower's
# stage maps), the region quickstart, its report.
REGIONS := runs/demo-regions
REGION_TOWER_STEPS := 2000
demo-regions: install
	mkdir -p $(REGIONS)
	$(BIN)/finevl world generate --out $(REGIONS)/world --n 2000 --size 128 --seed 3 --overwrite > /dev/null
	$(BIN)/finevl world generate --out $(REGIONS)/one-object --n 8000 --size 128 --seed 4 --max-objects 1 --overwrite > /dev/null
	rm -rf $(REGIONS)/tower $(REGIONS)/region
	$(BIN)/finevl clip tower --data $(REGIONS)/one-object --out $(REGIONS)/tower --model finevl-tiny-conv-ctx-128 --steps $(REGION_TOWER_STEPS) --batch-size 32 --warmup-steps 50 --dense-weight 1 --save-every 10000 > $(REGIONS)/tower.json
	$(BIN)/finevl region quickstart --data $(REGIONS)/world --clip $(REGIONS)/tower/checkpoint/model --out $(REGIONS)/region > $(REGIONS)/region.json
	$(BIN)/finevl report --overwrite --out $(REGIONS)/report.html --world $(REGIONS)/world $(REGIONS)/region/results/region.json > /dev/null
	@echo "report: open $(REGIONS)/report.html"

# pytest exits 5 when it collects no test: that is a failure here, said plainly.
test: install
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected"; exit 1; fi; exit $$rc

BENCH_VIT := clip-finevl-tiny-vit-contrastive-k0-random-seed
BENCH_LIT := clip-finevl-tiny-conv-lit-t20000x1600-k0-random-mix4000-seed0
bench: install
	$(BIN)/python benchmarks/world_gen.py --out benchmarks/results/world_gen.json
	$(BIN)/python benchmarks/peak.py --out benchmarks/results/peak.json
	# bf16 against fp32: every trainer, every inference path, MFU, CLIP-S at real size (docs/performance.md)
	$(BIN)/python -W ignore benchmarks/precision.py --out benchmarks/results/precision.json
	$(BIN)/python benchmarks/clip_score.py --out benchmarks/results/clip_score.json
	# CLIP: the LiT recipe on the conv tower (3 seeds), and the ViT contrastive baseline (the older STIC and editing rows stand on it)
	$(BIN)/python benchmarks/clip_fineshapes.py --work runs/bench --model finevl-tiny-conv --recipe lit --seeds 0 1 2 --out benchmarks/results/clip_lit.json
	$(BIN)/python benchmarks/clip_fineshapes.py --work runs/bench --model finevl-tiny-conv --recipe lit --tower-images 20000 --tower-steps 1600 --tower-minutes 12 --steps 500 --minutes 6 --mix-images 4000 --seeds 0 1 2 --out benchmarks/results/clip_lit_t20000_mix4000.json
	# towers that see where things are (issue 32): the context tower with scene heads, 3 seeds, and its consumers' probes
	$(BIN)/python -W ignore benchmarks/clip_fineshapes.py --work runs/bench --model finevl-tiny-conv-ctx --recipe lit --tower-images 8000 --tower-steps 3400 --tower-batch 64 --tower-minutes 30 \
	  --scene-images 20000 --dense-weight 1 --relation-weight 1 --binding-weight 0 --steps 500 --minutes 15 --mix-images 4000 --unlock-image-head --precision auto --seeds 0 1 2 --out benchmarks/results/clip_lit_scene.json
	$(BIN)/python benchmarks/consumer_probes.py --world runs/bench/fs64 --fit-images 1500 --limit 2000 --out benchmarks/results/consumer_probes.json \
	  --clip scene=runs/bench/tower-finevl-tiny-conv-ctx-t8000x3400b64-scene20000-d1r1b0-auto-seed0/checkpoint/model \
	  --clip one-object=runs/bench/tower-finevl-tiny-conv-t20000x1600-seed0/checkpoint/model
	$(BIN)/python benchmarks/clip_fineshapes.py --work runs/bench --model finevl-tiny-conv --recipe lit --hard-negatives 3 --out benchmarks/results/clip_lit_k3.json
	$(BIN)/python benchmarks/clip_fineshapes.py --work runs/bench --model finevl-tiny-conv --recipe lit --hard-negatives 3 --group-by background --out benchmarks/results/clip_lit_k3_grouped.json
	$(BIN)/python benchmarks/clip_fineshapes.py --work runs/bench --model finevl-tiny-vit --recipe contrastive --minutes 10 --steps 800 --seeds 0 1 --out benchmarks/results/clip_fineshapes.json
	$(BIN)/python benchmarks/clip_train.py --world runs/bench/fs64 --out benchmarks/results/clip_train.json
	$(BIN)/python benchmarks/clip_train.py --world runs/bench/fs64 --model finevl-tiny-conv --out benchmarks/results/clip_train_conv.json
	$(BIN)/python benchmarks/captioning_speed.py --world runs/bench/fs64 --clip runs/bench/$(BENCH_LIT)/checkpoint/model --out benchmarks/results/captioning_speed.json
	$(BIN)/python benchmarks/clip_reward.py --clip runs/bench/$(BENCH_LIT)/checkpoint/model --work runs/bench/clip_reward --out benchmarks/results/clip_reward.json
	$(BIN)/python -W ignore::FutureWarning benchmarks/stic.py --world runs/bench/fs64 --clip runs/bench/$(BENCH_VIT)0/checkpoint/model --work runs/bench/stic --out benchmarks/results/stic.json
	test -f runs/bench/fs128/world.json || $(BIN)/finevl world generate --out runs/bench/fs128 --n 4000 --size 128 --seed 3 > /dev/null
	# the region model's tower: the pooled-stem conv tower trained on 128 px one-object scenes, dense heads on (docs/clip.md)
	test -f runs/bench/one128-12k/world.json || $(BIN)/finevl world generate --out runs/bench/one128-12k --n 12000 --size 128 --seed 5 --max-objects 1 > /dev/null
	test -f runs/bench/tower128/probe.json || $(BIN)/finevl clip tower --data runs/bench/one128-12k --out runs/bench/tower128 --model finevl-tiny-conv-ctx-128 --steps 2000 --batch-size 32 --warmup-steps 50 --dense-weight 1 --save-every 10000 > /dev/null
	$(BIN)/python -W ignore::FutureWarning benchmarks/region.py --world runs/bench/fs128 --clip runs/bench/tower128/checkpoint/model --work runs/bench/region --out benchmarks/results/region.json
	$(BIN)/python benchmarks/editing.py --world runs/bench/fs64 --clip runs/bench/$(BENCH_VIT)0/checkpoint/model \
	  --judge-clip runs/bench/$(BENCH_VIT)1/checkpoint/model --work runs/bench/editing --out benchmarks/results/editing.json
	$(BIN)/python -W ignore::FutureWarning benchmarks/dpo_speed.py --model runs/bench/stic/seed0/base/sft/checkpoint/model --prefs runs/bench/stic/seed0/stic/prefs.jsonl --data runs/bench/fs64 --out benchmarks/results/dpo_speed.json

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
