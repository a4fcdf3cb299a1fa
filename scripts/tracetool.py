#!/usr/bin/env python3
# placeholder: being written
import sys
mode = [a for a in sys.argv if a.startswith('--mode=')][0][7:]
open(sys.argv[-1], 'w').write('')
