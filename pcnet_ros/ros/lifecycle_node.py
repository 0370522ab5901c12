"""pcnet_lifecycle_node: the managed variant, for bring-up orchestrated through lifecycle states.

    ros2 run pcnet_ros pcnet_lifecycle_node --ros-args --params-file config/pcnet.yaml
    ros2 lifecycle set /pcnet configure     # loads the model and warms it up (returns when warm)
    ros2 lifecycle set /pcnet activate      # creates subscriptions and publishers: frames flow
    ros2 lifecycle set /pcnet deactivate    # stops processing, keeps the model loaded
    ros2 lifecycle set /pcnet cleanup       # releases the model

Same parameters and per-frame behaviour as ``pcnet_node``: both map onto
:class:`pcnet_ros.ros.node.Wiring`.  Parameters are declared at construction
(so ``ros2 param`` works in every state) and checked at ``configure``.
"""
from __future__ import annotations

import sys

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from pcnet_ros.core.weights import WeightsError
from pcnet_ros.ros import params
from pcnet_ros.ros.node import run, Wiring

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class PCNetLifecycleNode(LifecycleNode):
    """Transitions map onto Wiring: configure = load, activate = open, deactivate = close, cleanup = unload."""

    def __init__(self, **kwargs) -> None:
        super().__init__("pcnet", **kwargs)
        self._values = params.declare_all(self)          # a bad config still fails at start, in one line
        self.wiring: Wiring | None = None
        self._on_set = None

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Returns once the warm-up has run: an orchestrator that waits for configure can then activate a node
        whose first frames are not slow, and a device that fails on its first frame fails the transition."""
        try:
            self.wiring = Wiring(self, self._values)
            self.wiring.load()
        except (WeightsError, params.ConfigError, ValueError, RuntimeError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self.wiring = None
            return FAILURE
        wiring = self.wiring
        while not wiring.worker.wait_warmed(0.5):
            if self.wiring is not wiring:                # a signal's shutdown released it meanwhile
                return FAILURE
            if not self.context.ok():
                self._release()
                return FAILURE
        error = wiring.worker.warmup_error
        if error is not None:
            self.get_logger().error(f"configure failed: warm-up: {error!r}")
            self._release()
            return FAILURE
        self._on_set = self.add_on_set_parameters_callback(wiring.on_set_parameters)
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.wiring.open_topics()
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.wiring.close_topics()
        return SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return SUCCESS

    def _release(self) -> bool:
        if self.wiring is None:
            return True
        self.wiring.close_topics()
        if self._on_set is not None:
            self.remove_on_set_parameters_callback(self._on_set)
            self._on_set = None
        finished = self.wiring.unload()
        self._values = self.wiring.values          # run-time changes survive a cleanup/configure cycle
        self.wiring = None
        return finished

    def shutdown(self) -> bool:
        """On SIGINT/SIGTERM, from any state: close topics and stop the thread."""
        return self._release()


def main(argv: list[str] | None = None) -> int:
    return run(PCNetLifecycleNode, "pcnet_lifecycle_node", argv)


if __name__ == "__main__":
    sys.exit(main())
