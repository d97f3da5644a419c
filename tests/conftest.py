import os
import sys

# The firmware's packages are imported as installed in the image: from firmware/.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "firmware"))
