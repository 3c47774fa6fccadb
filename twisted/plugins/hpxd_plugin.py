from twisted.application.service import ServiceMaker

hpxd = ServiceMaker("hpxd", "hpxd.tap", "hpxd multi-protocol application server", "hpxd")
