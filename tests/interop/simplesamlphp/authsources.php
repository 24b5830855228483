<?php
/*
 * The interop IdP's users (exampleauth:UserPass: "username:password" => attributes).
 * Attribute names here are the friendly ones; the IdP-hosted metadata maps them to
 * urn:oid: names (core:AttributeMap name2oid) before they are released.
 */
$config = [
    'admin' => ['core:AdminPassword'],

    'guichet-users' => [
        'exampleauth:UserPass',
        'alice:alice-pw' => [
            'uid' => ['alice'],
            'mail' => ['alice@example.org'],
            'givenName' => ['Hélène'],
            'sn' => ['Dupré'],
            'displayName' => ['Hélène Dupré'],
            'eduPersonAffiliation' => ['member', 'staff'],
        ],
        'bob:bob-pw' => [
            'uid' => ['bob'],
            'mail' => ['bob@example.org'],
            'givenName' => ['Bob'],
            'sn' => ['Sørensen'],
            'displayName' => ['Bob Sørensen'],
            'eduPersonAffiliation' => ['student'],
        ],
    ],
];
