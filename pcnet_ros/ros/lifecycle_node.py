"""pcnet_lifecycle_node: the managed variant, for bring-up orchestrated through lifecycle states.

    ros2 run pcnet_ros pcnet_lifecycle_node --ros-args --params-file config/pcnet.yaml
    ros2 lifecycle set /pcnet configure     # loads the model and warms it up (returns when warm)
    ros2 lifecycle set /pcnet activate      # creates subscriptions and publishers: frames flow
    ros2 lifecycle set /pcnet deactivate    # stops processing, keeps the model loaded
    ros2 lifecycle set /pcnet cleanup       # releases the model

Same parameters and per-frame behaviour as ``pcnet_node``: both map onto
:class:`pcnet_ros.ros.node.Wiring`.  Parameters are declared at construction
(so ``ros2 param`` works in every state) and checked when set.  Run-time ones
change in any state; the others (weights, device, warmup_sizes, ...) while the
node is unconfigured, from its start or after a cleanup or a failed configure,
and ``configure`` uses them: no restart to try other weights or a smaller
warm-up.
"""
from __future__ import annotations

import sys

from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter

from pcnet_ros.ros import params
from pcnet_ros.ros.node import checked_changes, run, STARTUP_ERRORS, Wiring

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
#: What a configured managed node says about a change to a parameter that is not run-time.
CLEANUP_FIRST = "cleanup the node, set it, then configure again"


class PCNetLifecycleNode(LifecycleNode):
    """Transitions map onto Wiring: configure = load, activate = open, deactivate = close, cleanup = unload."""

    def __init__(self, **kwargs) -> None:
        super().__init__("pcnet", **kwargs)
        self._values = params.declare_all(self, static_read_only=False)   # a bad config still fails at start
        self.wiring: Wiring | None = None
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _on_set_parameters(self, changed: list[Parameter]) -> SetParametersResult:
        """Configured: run-time changes reach the worker, the others are refused. Unconfigured: any checked value
        is kept for the next configure."""
        wiring = self.wiring
        if wiring is not None:
            return wiring.on_set_parameters(changed, CLEANUP_FIRST)
        new, answer = checked_changes(self._values, changed, None)
        if new is not None:
            self._values = new
        return answer

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Returns once the warm-up has run: an orchestrator that waits for configure can then activate a node
        whose first frames are not slow, and a device that fails on its first frame fails the transition."""
        try:
            self.wiring = Wiring(self, self._values)
            self.wiring.load()
        except STARTUP_ERRORS as exc:
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
