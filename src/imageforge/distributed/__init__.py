"""ImageForge past one machine, on Ray Serve (``pip install 'imageforge[ray]'``; ``imageforge serve --backend ray``).

Ray is imported only inside the functions that need it, so the single-process server never loads it. Modules:
``app`` (the Serve application and ``serve --backend ray``), ``replica`` (an engine replica: the in-process
scheduler and one engine), ``gateway`` (the ingress's :class:`~imageforge.scheduler.gateway.EngineGateway` over
Serve handles) and ``registry`` (which replicas are alive, for ``/health``, ``/ready`` and ``/metrics``).
"""
