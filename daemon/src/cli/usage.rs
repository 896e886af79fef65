//! The text `sanlock help` prints. Same sections, order and defaults as sanlock 3.8.5's usage
//! (wire.md §6.1), in our own words.

/// The usage text, ending in a newline.
pub const USAGE: &str = "\
Usage:
sanlock <command> <action> ...

Commands:
  daemon        start the lease manager daemon
  client        ask the running daemon to do something
  direct        read or write lease areas on storage, without a daemon
  help          show this text
  version       show the sanlock release this program is compatible with

sanlock daemon [options]
  -D            stay in the foreground, log everything to stderr
  -Q 0|1        quiet fail: no error log for a busy lease (1)
  -R 0|1        log every lease renewal (0)
  -H <num>      number of renewal records kept per lockspace (180)
  -L <pri>      lowest priority written to the log file, -1 for none (4 LOG_WARNING)
  -S <pri>      lowest priority sent to syslog, -1 for none (3 LOG_ERR)
  -U <uid>      user that owns the socket and runs the daemon
  -G <gid>      group that owns the socket and runs the daemon
  -t <num>      most worker threads (8)
  -g <sec>      seconds between SIGTERM (or killpath) and SIGKILL (40)
  -w 0|1        feed the watchdog through wdmd (1)
  -h 0|1        run at real-time priority (0)
  -l <num>      lock memory: 0 none, 1 current, 2 current and future (1)
  -b <sec>      seconds a host_id bitmap bit stays set
  -e <str>      this host's name, unique among the hosts (a uuid by default)

sanlock client <action> [options]
sanlock client status [-D] [-o p|s]
sanlock client gets [-h 0|1]
sanlock client host_status -s LOCKSPACE [-D]
sanlock client renewal -s LOCKSPACE
sanlock client set_event -s LOCKSPACE -i <host_id> [-g <gen>] -e <event> -d <data>
sanlock client set_config -s LOCKSPACE [-u 0|1] [-O 0|1]
sanlock client log_dump
sanlock client shutdown [-f 0|1] [-w 0|1]
sanlock client init -s LOCKSPACE | -r RESOURCE [-z 0|1] [-Z 512|4096] [-A 1M|2M|4M|8M]
sanlock client read -s LOCKSPACE | -r RESOURCE [-D] [-h 0|1] [-Z 512|4096] [-A 1M|2M|4M|8M]
sanlock client add_lockspace -s LOCKSPACE [-o <io_timeout>]
sanlock client inq_lockspace -s LOCKSPACE
sanlock client rem_lockspace -s LOCKSPACE
sanlock client command -r RESOURCE -c <path> <args>
sanlock client acquire -r RESOURCE -p <pid>
sanlock client convert -r RESOURCE -p <pid>
sanlock client release -r RESOURCE -p <pid>
sanlock client inquire -p <pid>
sanlock client request -r RESOURCE -f <force_mode>
sanlock client examine -r RESOURCE | -s LOCKSPACE
sanlock client format -x RINDEX [-Z 512|4096] [-A 1M|2M|4M|8M]
sanlock client create -x RINDEX -e <resource_name>
sanlock client delete -x RINDEX -e <resource_name>[:<offset>]
sanlock client lookup -x RINDEX [-e <resource_name> | -e :<offset>]
sanlock client update -x RINDEX -e <resource_name>[:<offset>] [-z 0|1]
sanlock client rebuild -x RINDEX

Ours (not in sanlock 3.8.5):
sanlock client show [-s <lockspace_name>] [-r RESOURCE] [--json]
sanlock client message -s LOCKSPACE -i <host_id> [-g <gen>] -m <msg> [-d <data>] [-w <sec>]
sanlock client fence -s LOCKSPACE -i <host_id> [-g <gen>] [-w <sec>]
sanlock msg init -s LOCKSPACE -a <path>:<offset>
sanlock msg listen -s LOCKSPACE -a <path>:<offset> [-c <count>] [-p <ms>]
sanlock msg send -s LOCKSPACE -a <path>:<offset> <text>
sanlock demo

sanlock direct <action> [-a 0|1] [-o <io_timeout>]
sanlock direct init -s LOCKSPACE | -r RESOURCE [-Z 512|4096] [-A 1M|2M|4M|8M]
sanlock direct read_leader -s LOCKSPACE | -r RESOURCE [-Z 512|4096] [-A 1M|2M|4M|8M]
sanlock direct dump <path>[:<offset>[:<size>]] [-f 0|1|2] [-Z 512|4096] [-A 1M|2M|4M|8M]
sanlock direct format -x RINDEX [-Z 512|4096] [-A 1M|2M|4M|8M]
sanlock direct lookup -x RINDEX [-e <resource_name> | -e :<offset>]
sanlock direct update -x RINDEX -e <resource_name>[:<offset>] [-z 0|1]
sanlock direct rebuild -x RINDEX

LOCKSPACE = <lockspace_name>:<host_id>:<path>:<offset>
  <lockspace_name>  name of the lockspace, at most 48 bytes
  <host_id>         this host's id in the lockspace, 1 to 2000
  <path>            disk or file holding the lockspace area (escape ':' as '\\:')
  <offset>          byte offset of the area on <path>; a trailing M means MiB

RESOURCE = <lockspace_name>:<resource_name>:<path>:<offset>[:<lver>]
  <lockspace_name>  name of the lockspace the resource belongs to
  <resource_name>   name of the resource, at most 48 bytes
  <path>            disk or file holding the lease area (escape ':' as '\\:')
  <offset>          byte offset of the lease area on <path>; a trailing M means MiB
  <lver>            lease version the holder must have, or SH for a shared lease

RINDEX = <lockspace_name>:<path>:<offset>
  <lockspace_name>  name of the lockspace the indexed resources belong to
  <path>            disk or file holding the index area
  <offset>          byte offset of the index area on <path>; a trailing M means MiB

Limits:
sector size / align size: 512/1M, 4096/1M, 4096/2M, 4096/4M, 4096/8M
highest host_id for each: 2000, 250, 500, 1000, 2000
name length: 48 bytes
path length: 1024 bytes
client connections: 1000
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_lists_the_client_actions_in_sanlocks_order() {
        // wire.md §6.1 item 4.
        let order = [
            "status",
            "gets",
            "host_status",
            "renewal",
            "set_event",
            "set_config",
            "log_dump",
            "shutdown",
            "init",
            "read",
            "add_lockspace",
            "inq_lockspace",
            "rem_lockspace",
            "command",
            "acquire",
            "convert",
            "release",
            "inquire",
            "request",
            "examine",
            "format",
            "create",
            "delete",
            "lookup",
            "update",
            "rebuild",
            "show",
            "message",
            "fence",
        ];
        let found: Vec<&str> = USAGE
            .lines()
            .filter_map(|l| l.strip_prefix("sanlock client "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| *w != "<action>")
            .collect();
        assert_eq!(found, order);
        assert!(!USAGE.contains("\n  -o "), "no 3.8.5+ daemon -o line");
    }
}
