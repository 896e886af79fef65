//! wdmd and /dev/watchdog: wdmd checks every 10 s (every second after a failure) and pets the
//! device while every armed expire is more than 10 s away; else it closes the device uncleanly
//! (one last ping). The device resets the host 60 s after its last ping.

use super::*;

impl World {
    /// What the daemon's watchdog policy ordered: wdmd takes it at once.
    pub(super) fn wdmd_order(&mut self, n: usize, order: Option<Order>) {
        match order {
            None | Some(Order::Register { .. }) => {}
            Some(Order::TestLive {
                renewal, expire, ..
            }) => {
                self.nodes[n].armed = Some(Time::from_secs(expire));
                self.nodes[n].last_renewal = Some(Time::from_secs(renewal));
            }
            Some(Order::Clear { .. }) => {
                self.nodes[n].armed = None;
                self.check_disarm(n);
            }
            Some(Order::Device { .. }) => unreachable!("a wdmd keeper drives no device"),
        }
    }

    pub(super) fn wdmd(&mut self, n: usize, inc: u32) {
        if self.nodes[n].inc != inc {
            return;
        }
        let now = self.local(n);
        let node = &mut self.nodes[n];
        let failing = node
            .armed
            .is_some_and(|expire| now + Duration::from_secs(10) >= expire);
        let next = if failing {
            if !node.device_closed {
                // Closing the device uncleanly pings it one last time.
                node.device_closed = true;
                node.last_pet = self.now;
                node.pets += 1;
            }
            let pets = node.pets;
            let fire = node.last_pet + Duration::from_secs(60);
            self.agenda
                .schedule(fire, Ev::WatchdogFire { n, inc, pets });
            Duration::from_secs(1)
        } else {
            // Reopened if it was closed, and petted.
            node.device_closed = false;
            node.last_pet = self.now;
            node.pets += 1;
            Duration::from_secs(10)
        };
        self.agenda.schedule(self.now + next, Ev::Wdmd { n, inc });
    }
}
