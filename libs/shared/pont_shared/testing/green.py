"""pytest plugin loaded first (pytest.ini): eventlet's monkey patching, as nameko services run."""
import eventlet

eventlet.monkey_patch()
