// The systemd headers, for Swift. The library is not linked: CNspawnShim's systemd_loader.c opens
// it when first needed and defines the functions swift-nspawn calls.
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <systemd/sd-daemon.h>
