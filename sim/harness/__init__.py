"""What a team's tests get from the harness: the pytest plugin's simulator fixtures, a
server on a thread of its own that plain and async tests can share, and the rig files and
fault plans shipped with the package."""
