"""Run the streaming server: `python -m telugu_s2s.serve [port=8123] [server.default_mode=turn]`.

Hydra composes conf/serve.yaml; `engine` is instantiated with `hydra.utils.instantiate`, so
any object that implements `serving.engine_api.Engine` can be served. The server listens on
the first free port of `ports` (8000, 8080, 8010) unless `port=` pins one.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf

from telugu_s2s.paths import CONFIG_DIR, REPO_ROOT

if not OmegaConf.has_resolver("repo_root"):
    OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT))

log = logging.getLogger("telugu_s2s.serve")


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="serve")
def main(cfg: DictConfig) -> None:
    from telugu_s2s.serving.server import ServerSettings, create_app, serve

    if cfg.threads:
        import torch

        torch.set_num_threads(int(cfg.threads))
    try:
        engine = hydra.utils.instantiate(cfg.engine)
    except Exception as exc:
        raise SystemExit(f"could not build the engine {cfg.engine.get('_target_')}: {exc}") from exc
    settings = ServerSettings.from_dict(OmegaConf.to_container(cfg.server, resolve=True))
    app = create_app(engine, settings, vad="silero" if cfg.vad else None)
    serve(app, cfg.host, list(cfg.ports), cfg.port, cfg.log_level, cfg.port_file)


if __name__ == "__main__":
    main()
