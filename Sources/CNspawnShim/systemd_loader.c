/* libsystemd, opened when the supervisor first needs it (library_loader.h): for its event loop once
 * the machine is being built, or for the bus on a systemd host. With its own libraries (libgcrypt,
 * the compressors) it takes the dynamic loader about half a millisecond, which every start would
 * otherwise spend before main(). The functions swift-nspawn calls, declared to Swift through
 * CSystemd's header, call into the library that nsp_systemd_load() opened. */
#include "library_loader.h"
#include "nspawn_shim.h"

#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#define SYSTEMD_CALLS(X) \
    X(sd_notify) \
    X(sd_bus_call) X(sd_bus_error_free) X(sd_bus_flush_close_unref) X(sd_bus_get_unique_name) X(sd_bus_match_signal) \
    X(sd_bus_message_append_basic) X(sd_bus_message_close_container) X(sd_bus_message_enter_container) \
    X(sd_bus_message_exit_container) X(sd_bus_message_new_method_call) X(sd_bus_message_open_container) \
    X(sd_bus_message_peek_type) X(sd_bus_message_read_basic) X(sd_bus_message_ref) X(sd_bus_message_rewind) \
    X(sd_bus_message_seal) X(sd_bus_message_unref) X(sd_bus_new) \
    X(sd_bus_open_system) X(sd_bus_process) X(sd_bus_set_address) X(sd_bus_set_bus_client) X(sd_bus_slot_unref) \
    X(sd_bus_start) X(sd_bus_wait) \
    X(sd_event_add_io) X(sd_event_add_signal) X(sd_event_add_time_relative) X(sd_event_exit) X(sd_event_loop) X(sd_event_new) \
    X(sd_event_source_disable_unref) X(sd_event_source_set_enabled) X(sd_event_source_set_io_events) \
    X(sd_event_source_set_time_relative) X(sd_event_unref)

enum { SYSTEMD_CALLS(NSP_LIBRARY_INDEX) SYSTEMD_COUNT };
static const char *const names[] = { SYSTEMD_CALLS(NSP_LIBRARY_NAME) };
static void *functions[SYSTEMD_COUNT];
static char load_error[256];

int nsp_systemd_load(void) { return nsp_library_open("libsystemd.so.0", names, functions, SYSTEMD_COUNT, load_error, sizeof load_error); }

const char *nsp_systemd_load_error(void) { return load_error; }

#define CALL(name) NSP_LIBRARY_CALL(functions, "libsystemd.so.0", name)

int sd_notify(int unset_environment, const char *state) { return CALL(sd_notify)(unset_environment, state); }

int sd_bus_call(sd_bus *bus, sd_bus_message *m, uint64_t usec, sd_bus_error *ret_error, sd_bus_message **reply) {
    return CALL(sd_bus_call)(bus, m, usec, ret_error, reply);
}
void sd_bus_error_free(sd_bus_error *e) { CALL(sd_bus_error_free)(e); }
sd_bus *sd_bus_flush_close_unref(sd_bus *bus) { return CALL(sd_bus_flush_close_unref)(bus); }
int sd_bus_get_unique_name(sd_bus *bus, const char **unique) { return CALL(sd_bus_get_unique_name)(bus, unique); }
int sd_bus_match_signal(
    sd_bus *bus, sd_bus_slot **ret, const char *sender, const char *path, const char *interface, const char *member,
    sd_bus_message_handler_t callback, void *userdata) {
    return CALL(sd_bus_match_signal)(bus, ret, sender, path, interface, member, callback, userdata);
}
int sd_bus_message_append_basic(sd_bus_message *m, char type, const void *p) { return CALL(sd_bus_message_append_basic)(m, type, p); }
int sd_bus_message_close_container(sd_bus_message *m) { return CALL(sd_bus_message_close_container)(m); }
int sd_bus_message_enter_container(sd_bus_message *m, char type, const char *contents) {
    return CALL(sd_bus_message_enter_container)(m, type, contents);
}
int sd_bus_message_exit_container(sd_bus_message *m) { return CALL(sd_bus_message_exit_container)(m); }
int sd_bus_message_new_method_call(
    sd_bus *bus, sd_bus_message **m, const char *destination, const char *path, const char *interface, const char *member) {
    return CALL(sd_bus_message_new_method_call)(bus, m, destination, path, interface, member);
}
int sd_bus_message_open_container(sd_bus_message *m, char type, const char *contents) {
    return CALL(sd_bus_message_open_container)(m, type, contents);
}
int sd_bus_message_peek_type(sd_bus_message *m, char *type, const char **contents) { return CALL(sd_bus_message_peek_type)(m, type, contents); }
int sd_bus_message_read_basic(sd_bus_message *m, char type, void *p) { return CALL(sd_bus_message_read_basic)(m, type, p); }
sd_bus_message *sd_bus_message_ref(sd_bus_message *m) { return CALL(sd_bus_message_ref)(m); }
sd_bus_message *sd_bus_message_unref(sd_bus_message *m) { return CALL(sd_bus_message_unref)(m); }
int sd_bus_message_rewind(sd_bus_message *m, int complete) { return CALL(sd_bus_message_rewind)(m, complete); }
int sd_bus_message_seal(sd_bus_message *m, uint64_t cookie, uint64_t timeout_usec) { return CALL(sd_bus_message_seal)(m, cookie, timeout_usec); }
int sd_bus_new(sd_bus **ret) { return CALL(sd_bus_new)(ret); }
int sd_bus_open_system(sd_bus **ret) { return CALL(sd_bus_open_system)(ret); }
int sd_bus_process(sd_bus *bus, sd_bus_message **r) { return CALL(sd_bus_process)(bus, r); }
int sd_bus_set_address(sd_bus *bus, const char *address) { return CALL(sd_bus_set_address)(bus, address); }
int sd_bus_set_bus_client(sd_bus *bus, int b) { return CALL(sd_bus_set_bus_client)(bus, b); }
sd_bus_slot *sd_bus_slot_unref(sd_bus_slot *slot) { return CALL(sd_bus_slot_unref)(slot); }
int sd_bus_start(sd_bus *bus) { return CALL(sd_bus_start)(bus); }
int sd_bus_wait(sd_bus *bus, uint64_t timeout_usec) { return CALL(sd_bus_wait)(bus, timeout_usec); }

int sd_event_add_io(sd_event *e, sd_event_source **s, int fd, uint32_t events, sd_event_io_handler_t callback, void *userdata) {
    return CALL(sd_event_add_io)(e, s, fd, events, callback, userdata);
}
int sd_event_add_signal(sd_event *e, sd_event_source **s, int sig, sd_event_signal_handler_t callback, void *userdata) {
    return CALL(sd_event_add_signal)(e, s, sig, callback, userdata);
}
int sd_event_add_time_relative(
    sd_event *e, sd_event_source **s, clockid_t clock, uint64_t usec, uint64_t accuracy, sd_event_time_handler_t callback, void *userdata) {
    return CALL(sd_event_add_time_relative)(e, s, clock, usec, accuracy, callback, userdata);
}
int sd_event_exit(sd_event *e, int code) { return CALL(sd_event_exit)(e, code); }
int sd_event_loop(sd_event *e) { return CALL(sd_event_loop)(e); }
int sd_event_new(sd_event **e) { return CALL(sd_event_new)(e); }
sd_event_source *sd_event_source_disable_unref(sd_event_source *s) { return CALL(sd_event_source_disable_unref)(s); }
int sd_event_source_set_enabled(sd_event_source *s, int enabled) { return CALL(sd_event_source_set_enabled)(s, enabled); }
int sd_event_source_set_io_events(sd_event_source *s, uint32_t events) { return CALL(sd_event_source_set_io_events)(s, events); }
int sd_event_source_set_time_relative(sd_event_source *s, uint64_t usec) { return CALL(sd_event_source_set_time_relative)(s, usec); }
sd_event *sd_event_unref(sd_event *e) { return CALL(sd_event_unref)(e); }
