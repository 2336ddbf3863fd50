#!/usr/bin/env bash
# Refresh an S2S export on this machine's CPU after the renders change (a voice re-paced,
# new dialogs): listen-and-speak, then duplex, each from the one before, bounded by a wall
# clock, on the current dataset build (`make data`):
#   bash recipes/cpu_s2s_refresh.sh FROM WORK [LISTEN_SPEAK_MIN] [DUPLEX_MIN]
# FROM is an S2S export (e.g. checkpoints/s2s); the exports land in WORK/{listen_speak,duplex}
# (fp16), each stage's log in WORK/<stage>.log. The codec tokens are encoded lazily by the
# data worker beside the training thread, so no hour-long token cache is built first. Each
# stage validates every few hundred steps and exports its best weights (val/loss, val/audio_ce).
# Listen-and-speak alone cuts replies short in dialog (docs/training_s2s.md, session 16):
# the duplex stage is what makes the export servable. LISTEN_SPEAK_MIN=0 skips that stage
# (duplex goes on from FROM: a longer duplex run). DRY_RUN=1 prints the overrides.
set -euo pipefail
FROM=$1 WORK=$2 LS_MIN=${3:-30} DUPLEX_MIN=${4:-35}
PY=${PYTHON:-.venv/bin/python}
LAYERS=${LAYERS:-6}
mkdir -p "$WORK"
source "$(dirname "$0")/train_stage.sh"

run() {  # run NAME MINUTES OVERRIDES...
  local name=$1 minutes=$2
  shift 2
  local overrides=("$@" model.net.cfg.num_layers="$LAYERS" data.precompute_tokens=false
    trainer.max_steps=-1 trainer.min_epochs=0 ++trainer.max_time="$(printf '00:%02d:%02d:00' $((minutes / 60)) $((minutes % 60)))"
    trainer.check_val_every_n_epoch=null trainer.enable_progress_bar=false logger=csv
    export_dir="$WORK/$name" paths.log_dir="$WORK/logs" hydra.run.dir="$WORK/logs/$name")
  train_stage "$name" "${minutes} min" "$WORK/$name.log" "${overrides[@]}"
}

# The export's own ear and user embeddings: no separate hearing stage or codec warm start.
DUPLEX_FROM=$FROM
if [ "$LS_MIN" -gt 0 ]; then
  run listen_speak "$LS_MIN" experiment=s2s_listen_speak_tiny model.init_from="$FROM" \
    model.hearing_from=null model.user_embedding_from=null model.lr=3e-4 \
    data.utterance_tasks.variant_prob=0 ++trainer.val_check_interval=300
  DUPLEX_FROM=$WORK/listen_speak
fi
run duplex "$DUPLEX_MIN" experiment=s2s_duplex_tiny model.init_from="$DUPLEX_FROM" \
  model.lr=2e-4 ++trainer.val_check_interval=150
