# Sourced by the CI stages (.ci/run, .ci/sanitize, .ci/wheel): one place for the torch they pin.
# Keep TORCH_CPU equal to the pin in the README's test command.
TORCH_CPU="torch==2.13.0"

# new_venv DIR: a fresh venv at DIR with current pip and the CPU build of torch, installed first so
# that pip never resolves another (multi-GB CUDA) torch for the project's `torch>=2.1`.
new_venv() {
  python3 -m venv "$1"
  "$1/bin/python" -m pip install --quiet --upgrade pip
  "$1/bin/python" -m pip install --quiet "$TORCH_CPU"
}
