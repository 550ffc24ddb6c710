// libqrencode (Debian: libqrencode-dev), used by TwofoldQR to draw enrollment QR codes.
#include <qrencode.h>
