"""pcnet_ros: real-time rain removal for ROS 2 camera streams with PCNet (Jiang et al., TIP 2021)."""
__version__ = "0.1.0"
